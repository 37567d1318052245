// Tokenization: BERT uncased WordPiece.
