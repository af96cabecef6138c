"""Callbacks that bring ``gradsight.watch`` to the trainers people use; each one is imported on
its own, so only the trainer you use needs to be installed:

    from gradsight.integrations.transformers import GradsightCallback   # Hugging Face Trainer
    from gradsight.integrations.lightning import GradsightCallback      # Lightning

They sit above the monitor: nothing in ``gradsight.monitor`` imports a trainer.
"""
