"""The model contract over SM-VCENet and its ablations (the paper's Table 3)."""

from model_contract import ModelContract


class TestSMVCENet(ModelContract):
    archs = ("sm_vcenet", "m_vcenet", "vcenet", "deeplab")
