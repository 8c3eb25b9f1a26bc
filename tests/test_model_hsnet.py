"""The model contract over HSNet."""

from model_contract import ModelContract


class TestHSNet(ModelContract):
    archs = ("hsnet",)
