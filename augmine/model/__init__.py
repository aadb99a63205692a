"""Model layer: the reference DenseNet (`densenet`), any other Keras model a config names (`sources`), learning-rate schedules (`schedules`)."""
