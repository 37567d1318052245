// NeuralNetwork: trainable layers.
