"""`lambda-vision`: predict on files, invoke the function with an event, manage models, print the OpenAPI document.

    lambda-vision predict photos/ https://example.com/cat.jpg --model nsfw --output results.jsonl
    lambda-vision invoke events/predict_raw.json
    lambda-vision models add detector.onnx --name parts --labels parts.txt
    lambda-vision openapi

Exit status: 0 success; 1 some images failed (predict), the function failed (invoke) or a model has a problem
(models check); 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from lambda_vision_cli import __version__
from lambda_vision_cli.graph import GraphError
from lambda_vision_cli.project import UsageError


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lambda-vision", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"lambda-vision {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    predict = commands.add_parser(
        "predict",
        help="answer images (files, folders, URLs) as JSON Lines or CSV",
        description="One line per image with the API's per-image fields and its source. Exit status 1 when any "
        "image failed, 2 for a usage error. Models come from MODELS_DIR (default layers/models/models).",
    )
    predict.add_argument("sources", nargs="+", metavar="PATH_OR_URL", help="image files, folders (recursive), URLs")
    predict.add_argument("--model", help="model name (default: the task's default model)")
    predict.add_argument("--task", choices=("classification", "detection"), help="the task whose default model to use")
    predict.add_argument("--top-k", type=_positive_int, help="labels per image (classification)")
    predict.add_argument("--threshold", type=_fraction, help="minimum score (detection)")
    predict.add_argument("--iou", type=_fraction, help="NMS overlap (detection)")
    predict.add_argument("--max-detections", type=_positive_int, help="most detections per image (detection)")
    predict.add_argument("--output", "-o", type=Path, help="write here (CSV when it ends in .csv) instead of stdout")
    predict.add_argument("--workers", type=_positive_int, default=1, help="batches prepared in parallel (default 1)")
    predict.add_argument("--batch-size", type=_positive_int, help="images per batch (default MAX_IMAGES_PER_REQUEST)")

    invoke = commands.add_parser(
        "invoke",
        help="run the template's function on an event (sam local invoke, without Docker)",
        description="Runs the function in a Lambda runtime worker, as the local API does; the proxy response on "
        "stdout, START/END/REPORT and the function's logs on stderr.",
    )
    invoke.add_argument("event", help="event JSON file, or - for standard input")
    invoke.add_argument("--function", help="logical id (default: the function the event's route names)")
    invoke.add_argument("--env-vars", type=Path, help="environment variables, SAM's JSON format")
    invoke.add_argument("--template", type=Path, help="SAM template (default template.yaml)")

    models = commands.add_parser("models", help="the model registry (models.toml in MODELS_DIR)")
    actions = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the models and the default of each task")
    describe = actions.add_parser("describe", help="one model: input, labels, decoder (loads it)")
    describe.add_argument("name")
    actions.add_parser("check", help="validate every entry: file, sha256, shapes, decoder; one line per problem")
    add = actions.add_parser(
        "add",
        help="register an ONNX file: inspect it, write its entry, prove it on a synthetic image",
        description="Inspects the graph (input layout and size, batching, outputs), recognises its output format "
        "among the project's decoders, finds class names in the ONNX metadata or --labels, places the file in "
        "MODELS_DIR and writes a complete entry into models.toml, then loads it and answers a synthetic image.",
    )
    add.add_argument("file", type=Path, metavar="FILE.onnx")
    add.add_argument("--name", required=True)
    add.add_argument("--task", choices=("classification", "detection"))
    add.add_argument("--labels", type=Path, help="class names, one per line")
    add.add_argument("--size", type=int, nargs=2, metavar=("WIDTH", "HEIGHT"), help="network input size")
    add.add_argument("--mean", type=float, nargs=3, help="per-channel mean (after --scale)")
    add.add_argument("--std", type=float, nargs=3, help="per-channel std")
    add.add_argument("--scale", type=float, help="multiplier of 0-255 pixel values (default 1/255)")
    add.add_argument("--color-order", choices=("RGB", "BGR"))
    add.add_argument("--resize", choices=("stretch", "letterbox", "short_side"))
    add.add_argument("--description", default="")
    add.add_argument("--default", action="store_true", help="make it its task's default model")

    openapi = commands.add_parser("openapi", help="print the API's OpenAPI document (JSON)")
    openapi.add_argument("--template", type=Path, help="SAM template (default template.yaml)")
    return parser


def run(args: argparse.Namespace) -> int:
    # Imported per command: `invoke` needs neither ONNX Runtime nor the models.
    if args.command == "predict":
        from lambda_vision_cli.predict import predict_command  # noqa: PLC0415

        return predict_command(
            args.sources,
            model=args.model,
            task=args.task,
            top_k=args.top_k,
            threshold=args.threshold,
            iou=args.iou,
            max_detections=args.max_detections,
            output=args.output,
            workers=args.workers,
            batch_size=args.batch_size,
        )
    if args.command == "invoke":
        from lambda_vision_cli.invoke import invoke_command  # noqa: PLC0415

        return invoke_command(args.event, args.function, args.env_vars, args.template)
    if args.command == "openapi":
        from lambda_vision_cli.openapi import openapi_command  # noqa: PLC0415

        return openapi_command(args.template)
    from lambda_vision_cli import models  # noqa: PLC0415

    if args.action == "list":
        return models.list_command()
    if args.action == "describe":
        return models.describe_command(args.name)
    if args.action == "check":
        return models.check_command()
    options = models.AddOptions(
        file=args.file,
        name=args.name,
        task=args.task,
        labels=args.labels,
        size=tuple(args.size) if args.size else None,
        mean=tuple(args.mean) if args.mean else None,
        std=tuple(args.std) if args.std else None,
        scale=args.scale,
        color_order=args.color_order,
        resize=args.resize,
        description=args.description,
        make_default=args.default,
    )
    return models.add_command(options)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (UsageError, GraphError) as error:
        print(f"lambda-vision: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
