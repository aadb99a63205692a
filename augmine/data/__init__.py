"""Data layer: dataset folders -> `DatasetIndex` and bad-image checks (`dataset`), the generated default dataset (`synth`), the Tiny-ImageNet download (`download`)."""
