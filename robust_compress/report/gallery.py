"""The report's gallery: test images the dense model withstands and the compressed one does not.

The audit records, per audited image, whether each model stayed correct under its whole attack
ensemble (``robust_mask``). An image robust for the dense model and broken for the final one is
attacked again here (PGD-20 on the final model, the run's threat) so the page can show the
adversarial image beside the clean one.
"""

from __future__ import annotations

import base64
import io
import logging

import torch

log = logging.getLogger(__name__)
GALLERY_SIZE = 8


def lost_indices(audit: dict, limit: int = GALLERY_SIZE) -> list[int]:
    """Indices of audited images robust for the dense model and not for the one that ships."""
    dense = (audit.get("dense") or {}).get("robust_mask") or ""
    from robust_compress.audit.compare import headline_key

    final = (audit.get(headline_key(audit) or "final") or {}).get("robust_mask") or ""
    lost = [i for i, (d, f) in enumerate(zip(dense, final, strict=False)) if d == "1" and f == "0"]
    return lost[:limit]


def png_data_uri(image: torch.Tensor, scale: int = 3) -> str:
    """A ``data:image/png;base64,...`` URI of one (C, H, W) image in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    array = image.detach().float().cpu().clamp(0, 1)
    array = array.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
    buffer = io.BytesIO()
    if array.shape[0] == 1:
        plt.imsave(buffer, array[0].numpy(), cmap="gray", vmin=0, vmax=1, format="png")
    else:
        plt.imsave(buffer, array[:3].permute(1, 2, 0).numpy(), format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def gallery(session, audit: dict) -> list[dict]:
    """One entry per lost image: index, label, clean and adversarial images, predictions."""
    from robust_compress.attacks.configs import PgdConfig
    from robust_compress.attacks.factory import build_adversary

    indices = lost_indices(audit)
    if not indices or session.test_data is None or session.model is None:
        return []
    threat = session.recipe.threat
    data = session.test_data.head(max(indices) + 1)
    x = data.x[indices].to(session.device)
    y = data.y[indices].to(session.device)
    cfg = PgdConfig(eps=threat.eps, steps=20, step=2.5 * threat.eps / 20)
    adversary = build_adversary(cfg, threat.norm, session.recipe.seed)
    model = session.model.eval()
    x_adv = adversary.perturb(model, x, y)
    with torch.no_grad():
        clean_pred = model(x).argmax(1).tolist()
        adv_pred = model(x_adv).argmax(1).tolist()
    return [
        {
            "index": i,
            "label": int(y[k]),
            "final_clean": clean_pred[k],
            "final_adv": adv_pred[k],
            "clean": png_data_uri(x[k]),
            "adversarial": png_data_uri(x_adv[k]),
        }
        for k, i in enumerate(indices)
    ]
