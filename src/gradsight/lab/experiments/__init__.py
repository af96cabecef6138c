"""One module per experiment; each registers itself with ``gradsight.lab.registry.experiment``.

Every module here is imported by the registry on first use: adding an experiment is adding
a file.
"""
