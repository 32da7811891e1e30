"""python -m service.cli: what a Ray Job's entrypoint (service.jobrun) runs."""
from service.cli import main

main()
