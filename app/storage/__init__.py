"""Object storage (S3, OBS, MinIO, Ceph) in and out, and the 255-character rule.

Importing this package is cheap: boto3 loads on the first transfer.

* `client`: locations, named endpoints, clients and error reasons.
* `names`: which file names are usable (`scan_names`, `scan_local`).
* `transfer`: `list_objects`, `stage_in`, `upload_dir` (multipart, parallel, progress).
* `progress`: progress callbacks, and the progress file the TUI reads.
* `data`: what the supervisor calls — `prepare_data`, `LogSyncer`, `finalize_outputs`.
"""

from __future__ import annotations

from app.storage.client import (
    ClientOptions,
    Endpoint,
    S3Location,
    client_for,
    make_client,
    storage_error,
)
from app.storage.data import (
    LogSyncer,
    data_ready,
    finalize_outputs,
    local_output_path,
    output_uploaded,
    prepare_data,
    remote_log_uri,
    sync_logs,
    upload_output,
)
from app.storage.errors import DataError, StorageError, TransferCancelled
from app.storage.names import scan_names
from app.storage.progress import (
    ProgressLog,
    TransferFile,
    TransferSnapshot,
    read_transfer,
    transfer_path,
    write_transfer,
)
from app.storage.transfer import (
    Pin,
    TransferOptions,
    list_objects,
    stage_in,
    upload_dir,
)

__all__ = [
    "ClientOptions",
    "DataError",
    "Endpoint",
    "LogSyncer",
    "Pin",
    "ProgressLog",
    "S3Location",
    "StorageError",
    "TransferCancelled",
    "TransferFile",
    "TransferOptions",
    "TransferSnapshot",
    "client_for",
    "data_ready",
    "finalize_outputs",
    "list_objects",
    "local_output_path",
    "make_client",
    "output_uploaded",
    "prepare_data",
    "read_transfer",
    "remote_log_uri",
    "scan_names",
    "stage_in",
    "storage_error",
    "sync_logs",
    "transfer_path",
    "upload_dir",
    "upload_output",
    "write_transfer",
]
