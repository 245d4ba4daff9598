"""Problems in, prompts out: task generators, dataset loaders, templates, validation, prompt sampling.

>>> from r1zero.data import load_problems, get_template
>>> problem = load_problems("list_sum:n=1,difficulty=3,seed=0")[0]
>>> problem.question, problem.answer, problem.verifier
('What is 5+4+3?', '12', 'integer')
>>> get_template("r1zero").render(problem.question).endswith("User: What is 5+4+3?. Assistant:")
True
"""

from r1zero.data.generators import available_generators, generate, get_generator, register_generator
from r1zero.data.hub import DATASETS, DatasetSpec, load_hub
from r1zero.data.loaders import load_file
from r1zero.data.problem import DataError, Problem, write_problems
from r1zero.data.sampler import PromptSampler
from r1zero.data.sources import load_problems
from r1zero.data.templates import Template, available_templates, get_template, register_template

__all__ = [
    "DATASETS",
    "DataError",
    "DatasetSpec",
    "Problem",
    "PromptSampler",
    "Template",
    "available_generators",
    "available_templates",
    "generate",
    "get_generator",
    "get_template",
    "load_file",
    "load_hub",
    "load_problems",
    "register_generator",
    "register_template",
    "write_problems",
]
