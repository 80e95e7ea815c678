"""python -m ketenbus.analytics            serve the analytics service
python -m ketenbus.analytics rebuild    replay the topics into the projection (see rebuild.py)"""

import sys

if sys.argv[1:2] == ["rebuild"]:
    from ketenbus.analytics.rebuild import main

    raise SystemExit(main(sys.argv[2:]))

from ketenbus.analytics.app import service
from ketenbus.kit.serve import serve

serve(service)
