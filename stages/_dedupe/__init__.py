"""Private helpers of the ``dedupe`` stage: decisions (keep policy, conflicts) and the report."""
