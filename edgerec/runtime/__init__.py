"""The torch-free runtime: numpy + OpenCV + one inference backend.

>>> from edgerec.runtime import Classifier, open_source
>>> with open_source("0") as cam, Classifier.load("bundle/", threads=2) as clf:   # doctest: +SKIP
...     for frame in cam:
...         print(clf.classify(frame).label)

Importing this package never imports torch, tensorflow, ``edgerec.train`` or ``edgerec.export``.
"""

from .classifier import Classifier, choose_artifact
from .pipeline import Pipeline, load_pipeline
from .postprocess import UNKNOWN, Prediction, Smoother
from .sources import open_source, parse_uri

__all__ = ["Classifier", "choose_artifact", "Prediction", "Smoother", "UNKNOWN", "open_source", "parse_uri",
           "Pipeline", "load_pipeline"]
