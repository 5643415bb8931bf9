"""Names of the COCO mAP backends (kept apart so the command line parses without torch)."""

BACKENDS = ("pycocotools", "faster-coco-eval")
