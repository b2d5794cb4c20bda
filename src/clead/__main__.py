import sys

from .cli import main
from .distributed import exit_worker

rc = main()
exit_worker(rc)  # under torchrun: leave without interpreter finalization (see its docstring)
sys.exit(rc)
