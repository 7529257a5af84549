"""From video files to YouTube-8M features as the releases made them: decoding,
Inception-v3 and VGGish, their PCAs and quantisation, the model files, the
records (docs/video_features.md)."""
