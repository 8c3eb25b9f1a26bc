"""The model contract over the training-free prototype baseline."""

from model_contract import ModelContract


class TestPrototypeMatcher(ModelContract):
    archs = ("prototype",)
