"""Your own Keras model on augmine's feed, with augmine's per-class report after each epoch.

    python examples/own_model.py                      # generated data, 2 epochs at 32 px
    python examples/own_model.py --data data/tiny-imagenet-sample --epochs 20 --size 64

Then look at what the model confuses, plan oversampling for its weakest classes and open
the app on the same folder:

    augmine mine analyze runs/own-model
    augmine mine plan runs/own-model
    augmine app runs/own-model

The feed sends uint8 images (B, S, S, 3) in [0, 255]; the model scales them itself with
its first layer, keras.layers.Rescaling(1/255).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import augmine


def small_cnn(num_classes: int, width: int = 32):
    """A small CNN for any image size: uint8 (B, H, W, 3) -> (B, num_classes) softmax."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(None, None, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)            # augmine sends raw uint8 images
    for filters in (width, width * 2, width * 4):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="dataset folder (default: augmine's generated dataset)")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/own-model"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--recipe", default="light", help="augmentation recipe (name or path)")
    args = parser.parse_args(argv)

    if args.data is None:
        from augmine.data.synth import ensure_default_dataset

        args.data = ensure_default_dataset()
    index = augmine.load_index(args.data)
    model = small_cnn(index.num_classes, args.width)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])

    train = augmine.train_dataset(index, args.recipe, args.size, args.batch_size, seed=0)
    val = augmine.eval_dataset(index, args.size, args.batch_size)
    report = augmine.PerClassReport(args.run_dir, index, args.size, args.batch_size)
    try:
        model.fit(train, validation_data=val, epochs=args.epochs, callbacks=[report],
                  shuffle=False)          # the feed shuffles itself
    finally:
        augmine.close_feed(train)
        augmine.close_feed(val)

    rep = report.last_report
    print(f"accuracy {rep['accuracy']:.1%}, macro F1 {rep['macro_f1']:.3f}; weakest: "
          f"{', '.join(rep['weakest'][:3])}")
    for pair in rep["symmetric_pairs"][:3]:
        print(f"confused: {pair['a_name']} <-> {pair['b_name']} ({pair['count']})")
    print(f"reports in {args.run_dir}; next: augmine mine analyze {args.run_dir}")
    return args.run_dir


if __name__ == "__main__":
    main()
