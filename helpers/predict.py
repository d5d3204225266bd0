"""Use a trained model on new photos: in a notebook, in an upload widget, or on the command line.

Introduced in 07 (``python -m helpers.predict PATH... [--model M] [--json]``). A photo is prepared
as the test split is, and the model's ``.json`` sidecar gives its class names and image size.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from helpers import quiet
from helpers.errors import LearnerError

MODEL_NAME = "fine_tuned_model"  # what 05 saves, and what prediction uses by default
DEFAULT_CLASS_NAMES = ["cat", "dog"]  # only for a model saved without its sidecar


class PredictError(LearnerError):
    """The model cannot be used for prediction; the message says what to do."""


@dataclass
class Predictor:
    """A trained model with what prediction needs to know about it (returned by :func:`load`)."""

    model: object  # keras.Model: uint8-valued squares of image_size in, one logit out
    class_names: list[str]  # a positive logit means class_names[1]
    image_size: int
    backbone: str
    path: Path
    notes: list[str] = field(default_factory=list)  # what was assumed (an old sidecar ...)


@dataclass
class Prediction:
    """What the model says about one image: its class and the probability of that class."""

    file: str
    class_name: str
    probability: float  # of class_name
    logit: float  # two classes: the logit (positive: class_names[1]); N: class_name's logit
    top: list[tuple[str, float]] = field(default_factory=list)  # the K likeliest, best first

    def line(self) -> str:
        """Returns ``file  class  probability`` (then the next classes, with ``--top K``)."""
        ranked = self.top or [(self.class_name, self.probability)]
        return "\t".join([self.file] + [f"{name}\t{p:.1%}" for name, p in ranked])


def default_model_path(cfg=None) -> Path:
    """Returns where 05 saves the fine-tuned model for the active settings (only read: the
    folder may be read-only, a teacher's shared runs folder)."""
    from helpers import config

    cfg = cfg or config.load(writable=False)
    return Path(cfg.output_dir) / f"{MODEL_NAME}.keras"


def _class_names_from_data(data_setting: str | None) -> list[str] | None:
    if data_setting in ("tfds", "sample"):
        return list(DEFAULT_CLASS_NAMES)
    if data_setting and Path(data_setting).is_dir():
        from helpers import data

        names = [folder.name for folder in data.class_folders(Path(data_setting))]
        return names if len(names) >= 2 else None
    return None


def load(path: str | Path | None = None, cfg=None) -> Predictor:
    """Returns the model at ``path`` (default: 05's model for ``cfg``) ready for prediction (07).

    Class names come from the sidecar, else from the class folders of an older sidecar's data,
    else a one-logit model is taken as cat and dog (see ``notes``); N logits are then refused.
    """
    import keras

    model_path = Path(path).expanduser() if path else default_model_path(cfg)
    if not model_path.is_file():
        if path:
            raise PredictError(f"No model file at {model_path}. Check the path given to --model.")
        raise PredictError(
            f"No trained model at {model_path}. Run notebooks/05_fine_tuning.ipynb (it saves one "
            "there), or pass the path of a saved model: --model path/to/fine_tuned_model.keras"
        )
    from helpers import config, files, models

    again = "Run notebooks/05_fine_tuning.ipynb again (it saves a new one), or delete the file."
    damage = models.keras_file_damage(model_path)
    if damage:
        raise PredictError(f"{damage}. {again}")
    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as error:  # not a Keras file, saved by another Keras ...
        message = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise PredictError(
            f"{model_path} cannot be loaded as a Keras model ({type(error).__name__}: {message}). "
            "Pass a .keras file saved by 05 (models.save)."
        ) from None
    sidecar_path = model_path.with_suffix(".json")
    sidecar = {}
    if sidecar_path.is_file():
        try:
            sidecar = files.read_json(sidecar_path, again)
        except files.DamagedFileError as error:
            raise PredictError(str(error)) from None
        _, problem = models.check_pair(model_path)
        if problem:
            raise PredictError(f"{problem}. {again}")
    if not path and sidecar:  # this profile's own model: it must fit TL_DATA's classes now
        mismatch = models.class_mismatch(sidecar, cfg or config.load(writable=False))
        if mismatch:
            raise PredictError(
                f"{model_path} {mismatch}. Run notebooks/05_fine_tuning.ipynb again to train it "
                "for these classes, or pass a model with --model."
            )
    notes = []
    image_size = int(model.input_shape[1])
    units = model.output_shape[-1]
    class_names = sidecar.get("class_names")
    source = f"its class names ({sidecar_path.name})"
    if class_names is None:
        class_names = _class_names_from_data(sidecar.get("data"))
        source = f"the class folders of {sidecar.get('data')}"
        if class_names is None:
            # Not recorded anywhere: the sidecar is missing (a model saved by hand, copied
            # alone) or older than class names. Say so, never as if a file said it.
            missing = (
                f"its sidecar {sidecar_path.name} records no class names"
                if sidecar
                else f"there is no sidecar {sidecar_path.name} beside it to name its classes"
            )
            fix = (
                f"put the {sidecar_path.name} saved with it beside {model_path.name} (05 saves "
                "fine_tuned_model.keras and fine_tuned_model.json side by side), or save the "
                "model with models.save, which writes both"
            )
            if units != 1:
                raise PredictError(
                    f"{model_path} outputs {units} logits per image ({units} classes), but "
                    f"{missing}, so nothing says which class is which. To use it, {fix}."
                )
            class_names = list(DEFAULT_CLASS_NAMES)
            notes.append(
                f"{model_path.name}: {missing}; it outputs one logit (two classes), assumed to "
                f"be {class_names[0]!r} and {class_names[1]!r}, the series' default. If it was "
                f"trained on other classes, {fix}."
            )
        else:
            notes.append(f"class names {class_names} read from {sidecar['data']}")
    from helpers import models

    if len(class_names) < 2 or units != models.output_units(len(class_names)):
        raise PredictError(
            f"{model_path} outputs {units} logit(s) per image, but {source} list "
            f"{len(class_names)} classes {class_names}: they do not belong together. Use the "
            ".keras and .json files 05 saved side by side."
        )
    return Predictor(
        model=model,
        class_names=list(class_names),
        image_size=image_size,
        backbone=sidecar.get("backbone", "unknown"),
        path=model_path,
        notes=notes,
    )


def interpret(logits, class_names: list[str], file: str = "", top: int = 1) -> Prediction:
    """Returns the class the logits stand for, its probability and the ``top`` likeliest (07)."""
    values = np.asarray(logits, dtype=np.float64).reshape(-1)
    if len(values) == 1:
        p = 1.0 / (1.0 + np.exp(-values[0]))
        probabilities = np.array([1.0 - p, p])
    else:
        shifted = np.exp(values - values.max())
        probabilities = shifted / shifted.sum()
    order = np.argsort(-probabilities, kind="stable")
    best = int(order[0])
    return Prediction(
        file=file,
        class_name=class_names[best],
        probability=float(probabilities[best]),
        logit=float(values[0] if len(values) == 1 else values[best]),
        top=[(class_names[i], float(probabilities[i])) for i in order[: max(1, top)]],
    )


def logits(model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Returns the model's logits, ``(n,)`` or ``(n, N)``, for a uint8 batch of prepared images."""
    images = np.asarray(images, dtype="float32")
    values = np.asarray(model.predict(images, batch_size=batch_size, verbose=0))
    return values.reshape(-1) if values.shape[-1] == 1 else values


def classes(logits: np.ndarray) -> np.ndarray:
    """Returns the predicted class of each image: logit > 0 for one logit, else the argmax (07)."""
    logits = np.asarray(logits)
    if logits.ndim == 2 and logits.shape[1] == 1:
        logits = logits[:, 0]
    return (logits > 0).astype(int) if logits.ndim == 1 else np.argmax(logits, axis=-1)


def find_images(paths: list[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Returns ``(files, problems)``: every file named or inside a folder named (hidden ones
    left out), and ``(path, reason)`` for a missing path or a folder with no files."""
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for name in paths:
        path = Path(name).expanduser()
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(n.startswith(".") for n in p.relative_to(path).parts)
            )
            if not found:
                problems.append((str(name), "folder holds no files (no images to predict)"))
            files.extend(found)
        else:
            problems.append((str(name), "no such file or folder"))
    return files, problems


def predict_files(
    predictor: Predictor, paths: list[str | Path], batch_size: int = 32, top: int = 1
) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Returns ``(predictions, problems)`` for image files and folders of images (07): a file
    that is not a usable image is a problem ``(file, reason)``, the others are predicted."""
    from helpers import data

    files, problems = find_images(paths)
    names, images = [], []
    for path in files:
        try:
            images.append(data.prepare_image(data.read_image(path), predictor.image_size))
            names.append(str(path))
        except data.DataError as error:
            problems.append((str(path), str(error).removeprefix(f"{path}: ")))
        except Exception as error:  # anything else a strange file can cause: report, go on
            problems.append((str(path), f"cannot be read ({type(error).__name__}: {error})"))
    if not images:
        return [], problems
    values = logits(predictor.model, np.stack(images), batch_size)
    predictions = [
        interpret(value, predictor.class_names, name, top)
        for name, value in zip(names, values, strict=True)
    ]
    return predictions, problems


def predict_image(predictor: Predictor, image, name: str = "", top: int = 1) -> Prediction:
    """Returns the prediction for one image: a path, a file's bytes, or a uint8 array (h, w, 3)."""
    from helpers import data

    if not isinstance(image, np.ndarray):
        image = data.read_image(image)
    prepared = data.prepare_image(image, predictor.image_size)
    (value,) = logits(predictor.model, prepared[None])
    return interpret(value, predictor.class_names, name, top)


def tta_logits(model, images: np.ndarray, *, plain: np.ndarray | None = None) -> np.ndarray:
    """Returns test-time augmented logits: the mean of each image's and its mirror's logit (07).
    ``plain``: the images' own logits, when already computed; then only the mirrors are predicted.
    """
    images = np.asarray(images)
    plain = logits(model, images) if plain is None else np.asarray(plain)
    return (plain + logits(model, images[:, :, ::-1])) / 2


def quoted(class_name: str) -> str:
    """Returns ``class_name`` in quotes, for a sentence: a folder named ``1`` printed bare
    reads as a number (``'1' (87.5%)`` reads as a class)."""
    return f"'{class_name}'"


def upload_result(predictor: Predictor, uploads) -> str:
    """Returns the HTML the upload widget shows for ``uploads`` (a ``FileUpload.value`` of
    ipywidgets 8, or 7's dict): one line per file, e.g. ``cat.jpg: <b>dog</b> (87.5%)`` (07)."""
    from html import escape

    from helpers import data

    if not uploads:
        return "Choose a photo to classify."
    top = 3 if len(getattr(predictor, "class_names", ())) > 2 else 1  # N classes: the likeliest 3
    if isinstance(uploads, dict):  # ipywidgets 7 (Colab's): {file name: {"content": ...}}
        uploads = [{"name": name, **upload} for name, upload in uploads.items()]
    lines = []
    for upload in uploads:
        name = upload.get("name", "photo")
        try:
            result = predict_image(predictor, bytes(upload["content"]), name, top=top)
        except data.DataError as error:
            lines.append(
                f"{escape(name)}: not a usable image ({escape(str(error).split(': ', 1)[-1])})"
            )
            continue
        # N classes: the next two, quoted ("then '2' (10.0%)"); the answer is set apart in bold
        others = ", ".join(f"{escape(quoted(c), quote=False)} ({p:.1%})" for c, p in result.top[1:])
        lines.append(
            f"{escape(name)}: <b>{escape(result.class_name)}</b> ({result.probability:.1%})"
            + (f", then {others}" if others else "")
        )
    return "<br>".join(lines)


def upload_widget(predictor: Predictor):
    """Returns an ipywidgets box: a ``FileUpload`` button and what the model says (07)."""
    from helpers import colab

    if not colab.widgets_render():
        from IPython.display import HTML

        return HTML(
            f"<p><i>{colab.static_note()}</i></p>Classify a photo in code instead: upload it in "
            "Colab's Files pane, then <code>predict.predict_image(predictor, path)</code>."
        )
    import ipywidgets as w

    upload = w.FileUpload(accept="image/*", multiple=False, description="Upload a photo")
    result = w.HTML(upload_result(predictor, ()))

    def on_upload(change) -> None:
        result.value = upload_result(predictor, change["new"])

    upload.observe(on_upload, names="value")
    return w.HBox([upload, result])


def _positive_int(text: str) -> int:
    """Returns ``text`` as a whole number of 1 or more; argparse reports anything else."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: use a whole number of 1 or more, e.g. 32")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.predict",
        description=(
            "Classify photos with the model 05 trained. Prints one line per image: the file, "
            "the class and the probability of that class (tab-separated). Problems (a missing "
            "path, a file that is not an image) are reported on stderr by name; the other "
            "files are still classified."
        ),
        epilog=(
            "The default model is fine_tuned_model.keras in the active profile's output folder "
            "(TL_PROFILE, TL_OUTPUT_DIR: default runs/<profile>). Exit status: 0 when at least "
            "one image was classified, 1 when none was, 2 for a wrong command line. "
            "Example: python -m helpers.predict ~/Pictures/pets --json"
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    parser.add_argument(
        "--model", metavar="M", help="a .keras file saved by 05 (default: the active profile's)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON list (file, class_name, probability, logit per image) instead",
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=32, help="images per batch (32)"
    )
    parser.add_argument(
        "--top",
        type=_positive_int,
        default=1,
        metavar="K",
        help="also print the next likeliest classes: K classes and probabilities per image (1)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns its exit status (0: something was predicted)."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except Exception as error:  # never a traceback: say what happened in one line
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    try:
        with quiet.filtered_stderr(quiet.ALL_LINES):
            import tensorflow  # noqa: F401  (its start-up messages are not for the user)

            cfg = None
            if not args.model:
                from helpers import config

                cfg = config.load(writable=False)  # only reads: a read-only folder will do
            predictor = load(args.model, cfg)
    except LearnerError as error:  # no model, a wrong TL_* setting
        print(f"error: {error}", file=sys.stderr)
        return 1
    for note in predictor.notes:
        print(f"note: {note}", file=sys.stderr)
    top = min(args.top, len(predictor.class_names))
    predictions, problems = predict_files(predictor, args.paths, args.batch_size, top)
    for name, reason in problems:
        print(f"error: {name}: {reason}", file=sys.stderr)
    if args.json:
        print(json.dumps([asdict(p) for p in predictions], indent=1))
    else:
        for prediction in predictions:
            print(prediction.line())
    if not predictions:
        print("error: no image could be classified", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
