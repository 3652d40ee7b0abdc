"""Every change tinyjax makes to tinygrad, behind one explicit install()."""


def install():
  from . import renderer  # noqa: F401  (importing it patches, for now)
