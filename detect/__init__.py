"""Object detection on the shared ``classify`` backbones: data, models, evaluation, serving."""

from detect.offline import configure_ultralytics_env

configure_ultralytics_env()
