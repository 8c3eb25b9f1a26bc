"""HSNet's and DCAMA's ports against logits stored from the peers' own code (golden fixtures).

``benchmarks/make_golden.py hsnet|dcama`` ran the peer's network on weights drawn from the
stored keys (``golden_inputs.peer_state``) and a seeded episode; here the same weights are drawn
again, saved as the peers save their files, loaded as a user loads them, and fewzero's logits
must equal the stored ones. Each of the ports' one-line slips (a resampling's corners, a head
count, a shot merge, a kernel size) changes these logits.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from golden_inputs import PEER_SHOTS, PEER_STEP, peer_episode, peer_state

from fewzero.models import load_trained_model

GOLDEN = Path(__file__).parent / "fixtures" / "golden"


@pytest.mark.parametrize("peer", ["hsnet", "dcama"])
def test_the_port_gives_the_peers_own_logits(peer, tmp_path):
    data = np.load(GOLDEN / f"{peer}.npz")
    state = peer_state(json.loads(str(data["keys"])))
    path = tmp_path / f"{peer}_fold0.pt"
    torch.save({"module." + k: v for k, v in state.items()}, path)  # nn.DataParallel's prefix
    model, _ = load_trained_model(path)
    query, support, masks = peer_episode()
    runs = [("logits_1shot", 1)] + ([("logits_kshot", PEER_SHOTS)] if peer == "dcama" else [])
    for key, shots in runs:
        with torch.no_grad():
            logits = model(query, support[:, :shots], masks[:, :shots])
        ref = torch.from_numpy(data[key])
        got = logits[..., ::PEER_STEP, ::PEER_STEP]
        assert (got - ref).abs().max() <= 1e-4 * ref.abs().max(), f"{peer} {key}"
