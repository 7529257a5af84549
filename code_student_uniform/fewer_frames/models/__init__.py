"""The models: their contract, the families (every *_models.py here is found), layers,
the LSTM, losses, the teacher-student graph of a ModelConfig, FLOPs and memory."""
