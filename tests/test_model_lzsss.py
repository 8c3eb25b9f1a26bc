"""The model contract over SPNet and ZSVM (word-conditioned)."""

from model_contract import ModelContract


class TestLZSSS(ModelContract):
    archs = ("spnet", "zsvm")
