"""Reconstruction-based anomaly detection for 2D images, learned from healthy images only.

Convolutional AE / VAE (Kingma & Welling 2014) and the context-encoding VAE (Zimmerer et al. 2019,
arXiv:1812.05941) with the StRegA post-processing (Chatterjee et al. 2022, Computers in Biology and Medicine
106093, arXiv:2201.13271).
"""

from biolatent.anomaly.image.autoencoders import ConvAE, ConvVAE
from biolatent.anomaly.image.cevae import CeVAE
from biolatent.anomaly.image.detector import KINDS, ImageReconstructionDetector
from biolatent.anomaly.image.postprocess import otsu_threshold, postprocess

__all__ = ["KINDS", "CeVAE", "ConvAE", "ConvVAE", "ImageReconstructionDetector", "otsu_threshold", "postprocess"]
