"""edgerec.devices: boards. Profiles, setup, deploy over SSH, rollback, status, doctor, pull.

Modules (imported on use; nothing here touches the network or a board at import):

- ``device_profile`` device profiles (``load_profile("rpi5")``): what edgerec knows about a board model
- ``ssh``       ``connect(Target.parse("pi@host"))``: host-key checked SSH, quoted remote commands, the board lock
- ``deploy``    ``deploy``, ``rollback``, ``status`` (verify, stage, on-board sha256, atomic switch, health, rollback)
- ``inventory`` many boards in parallel with a concurrency limit and a per-host summary
- ``setup``     ``edgerec device setup``: venv, OS packages, board.json, systemd unit or supervised process
- ``board``     the board side: the service, health check and activation, run as ``python -m edgerec.devices.board``
- ``pull``      pull mode over HTTP(S), on the board
- ``doctor``    ``edgerec device doctor``: why the camera or a backend does not work
"""
