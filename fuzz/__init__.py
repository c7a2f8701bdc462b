"""atheris harnesses for the policy loader and the token parser (run ``python fuzz/<name>.py -runs=N``)."""

__all__: list[str] = []
