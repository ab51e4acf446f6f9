"""``python -m webapp``: serve the site with eventlet, or ``python -m webapp export-corrections OUT_DIR``."""

import eventlet

# Must come before anything imports socket or threading, or those stay blocking under eventlet.
eventlet.monkey_patch()

import argparse  # noqa: E402
import sys  # noqa: E402

from webapp import create_app  # noqa: E402
from webapp.extensions import socketio  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve or export."""
    parser = argparse.ArgumentParser(prog="python -m webapp", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the web site (the default)")
    export = sub.add_parser("export-corrections", help="write consented corrections as a training folder")
    export.add_argument("out_dir")
    for command_parser in (parser, serve):
        command_parser.add_argument("--host", default="127.0.0.1")
        command_parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    if args.command == "export-corrections":
        # Exporting reads files and rows only; loading the model would just cost start-up time.
        app = create_app({"LAZY_MODEL": True})
        with app.app_context():
            from webapp.services import export_corrections

            print(f"exported {export_corrections(args.out_dir)} corrections to {args.out_dir}")
        return 0
    app = create_app()
    print(f"Emotion Lens on http://{args.host}:{args.port} ({app.config['ASYNC_MODE']})", flush=True)
    socketio.run(app, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
