"""The report's gallery: test images the dense model withstands and the compressed one does not.

The audit records, per audited image, whether each model stayed correct under its whole attack
ensemble (``robust_mask``). An image robust for the dense model and broken for the one that
ships is attacked again here (PGD-20 on the final torch model, the run's threat) so the page
can show the adversarial image beside the clean one. When the headline audit is the deployed
file's, the predictions shown are the file's (ONNX Runtime, the PGD-20 image transferred from
its fake-quant twin, as the audit attacks it); each entry says whose they are and whether this
one attack breaks the image (the audit's worst case over its whole ensemble did).
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
    file = _deployed(session, audit)
    clean_pred, adv_pred = _predictions(file or model, x, x_adv)
    return [
        {
            "index": i,
            "label": int(y[k]),
            "predicted_by": "deployed file" if file else "final model",
            "final_clean": clean_pred[k],
            "final_adv": adv_pred[k],
            "clean": png_data_uri(x[k]),
            "adversarial": png_data_uri(x_adv[k]),
        }
        for k, i in enumerate(indices)
    ]


def _deployed(session, audit: dict):
    """The deployed ONNX file when the headline audit is its, else None."""
    from robust_compress.audit.compare import headline_key
    from robust_compress.stages.audit_beyond import deployed_file

    return deployed_file(session) if headline_key(audit) == "int8_onnx" else None


def _predictions(subject, x: torch.Tensor, x_adv: torch.Tensor) -> tuple[list[int], list[int]]:
    """Top-1 classes of the clean and the attacked images by ``subject`` (model or file)."""
    from robust_compress.audit.predict import as_predictor, predicted_labels

    with as_predictor(subject) as predict:
        clean, adv = (predicted_labels(predict, t.cpu(), len(t)) for t in (x, x_adv))
        return clean.tolist(), adv.tolist()
