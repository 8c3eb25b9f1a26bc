"""The model contract over DCAMA."""

from model_contract import ModelContract


class TestDCAMA(ModelContract):
    archs = ("dcama",)
