"""`rankstack train`: run a training recipe (mine, train, save with a model card, evaluate)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("train", help="train a cross-encoder, dense, SPLADE or ColBERT model from a JSON/YAML recipe")
    p.add_argument("recipe", help="JSON or YAML recipe: model, data, mining, loss, training, evaluation (see README)")
    p.add_argument("--output", "-o", help="where to save the model (default: the recipe's 'output')")
    p.add_argument("--restart", action="store_true",
                   help="ignore checkpoints and mined examples in the output folder and start over")
    p.add_argument("--no-eval", dest="evaluate", action="store_false",
                   help="skip the evaluation on the held-back split")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> None:
    """Run a recipe end to end and print the evaluation table."""
    from rankstack.train.recipe import run_recipe

    result = run_recipe(args.recipe, output=args.output, resume=not args.restart, evaluate=args.evaluate,
                        progress=False if args.quiet else None)
    r = result.report
    resumed = f", resumed from step {r.resumed_from[-1]}" if r.resumed_from else ""
    print(f"trained {r.steps} steps in {r.seconds:.0f}s on {r.hardware}{resumed} -> {result.output}")
    if result.table:
        print()
        print(result.table)
