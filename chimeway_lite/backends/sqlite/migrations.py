"""Upgrades of files made by older versions: version -> the SQL that makes it version + 1.

Each step runs statement by statement inside the one ``BEGIN IMMEDIATE`` transaction that
opens the file (:func:`~chimeway_lite.backends.sqlite.connection.connect`), so an upgrade is
whole or absent. A file upgraded step by step has the same tables, columns (in the same
order) and indexes as one created by ``schema.sql``; a test compares the two.
"""

from __future__ import annotations

from collections.abc import Mapping

# Version 1 kept the machine's state in evidence: the wait's target in
# status_context.to_step, "settling" as status_reason = 'signal_received' and its event in
# the latest signal_received row. Version 2 makes it explicit (wait_kind, wait_target,
# resumed_by), read from that evidence once, here.
_V1_TO_V2 = """
ALTER TABLE workflow_runs ADD COLUMN wait_kind TEXT;
ALTER TABLE workflow_runs ADD COLUMN wait_target TEXT;
ALTER TABLE workflow_runs ADD COLUMN resumed_by TEXT;
UPDATE workflow_runs
   SET wait_kind = 'wait_until',
       wait_target = CASE json_type(status_context, '$.to_step')
                     WHEN 'text' THEN json_extract(status_context, '$.to_step') END
 WHERE state = 'waiting' AND json_valid(status_context);
UPDATE workflow_runs
   SET resumed_by = (SELECT json_extract(t.context, '$.event_name')
                       FROM workflow_transitions AS t
                      WHERE t.workflow_run_id = workflow_runs.id
                        AND t.reason = 'signal_received' AND json_valid(t.context)
                      ORDER BY t.seq DESC LIMIT 1)
 WHERE state = 'active' AND status_reason = 'signal_received';
DROP INDEX workflow_runs_signal_settle;
CREATE INDEX workflow_runs_signal_settle ON workflow_runs (last_transition_at, id)
    WHERE state = 'active' AND resumed_by IS NOT NULL;
"""

#: version -> the statements that upgrade it by one.
MIGRATIONS: Mapping[int, str] = {1: _V1_TO_V2}
