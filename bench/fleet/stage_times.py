# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Callback for the fleet and no-op benchmarks: seconds per play, written as JSON.

Enabled by bench/fleet/run.sh and bench/noop/run.sh (ANSIBLE_CALLBACKS_ENABLED=stage_times);
writes {"plays": [[name, seconds], ...], "total": seconds} to $HV_STAGE_TIMES at the end.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: stage_times
type: aggregate
short_description: seconds per play, as JSON (benchmarks only)
description: Writes each play's wall time to the file named by HV_STAGE_TIMES.
"""


class CallbackModule(CallbackBase):
    """Seconds per play."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "stage_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._start = time.monotonic()
        self._plays = []
        self._current = None

    def _close(self):
        if self._current:
            name, began = self._current
            self._plays.append([name, round(time.monotonic() - began, 2)])
            self._current = None

    def v2_playbook_on_play_start(self, play):
        self._close()
        self._current = (play.get_name(), time.monotonic())

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get("HV_STAGE_TIMES")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(
                    {"plays": self._plays, "total": round(time.monotonic() - self._start, 2)},
                    handle,
                )
