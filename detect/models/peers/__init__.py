"""Reference detectors from other libraries (torchvision, ultralytics) behind the Detector contract,
registered for benchmarks and comparisons; used as libraries, never copied."""

#: classes of the COCO detection benchmark (the peers' default head size)
COCO_NUM_CLASSES = 80
