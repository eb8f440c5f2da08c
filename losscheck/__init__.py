"""losscheck: explain why the loss numbers Keras reports disagree.

Importing this package must stay cheap: TensorFlow is imported only when a command runs.
"""

__version__ = "0.1.0"
