"""The built-in verifiers, one module each; the registry imports every module of this folder.

A new file here that uses ``@register("name")`` makes ``name`` a built-in verifier with no other edit
(the contract and code-injection tests then cover it too). Code shared by these modules lives in
:mod:`r1zero.verifiers.support`; the helpers a user's verifier needs are the public modules
:mod:`r1zero.verifiers.extract` and :mod:`r1zero.verifiers.format`.
"""
