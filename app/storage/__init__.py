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
    endpoint_for,
    endpoints_of,
    make_client,
    storage_error,
)
from app.storage.data import (
    NO_USABLE_FILES,
    FinalizeResult,
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
from app.storage.names import NameScan, scan_local, scan_names
from app.storage.progress import (
    TRANSFER_FILE,
    ProgressLog,
    TransferFile,
    TransferSnapshot,
    read_transfer,
    transfer_path,
    write_transfer,
)
from app.storage.transfer import (
    ObjectInfo,
    Pin,
    StageResult,
    TransferOptions,
    UploadResult,
    list_objects,
    stage_in,
    upload_dir,
)

__all__ = [
    "NO_USABLE_FILES",
    "TRANSFER_FILE",
    "ClientOptions",
    "DataError",
    "Endpoint",
    "FinalizeResult",
    "LogSyncer",
    "NameScan",
    "ObjectInfo",
    "Pin",
    "ProgressLog",
    "S3Location",
    "StageResult",
    "StorageError",
    "TransferCancelled",
    "TransferFile",
    "TransferOptions",
    "TransferSnapshot",
    "UploadResult",
    "client_for",
    "data_ready",
    "endpoint_for",
    "endpoints_of",
    "finalize_outputs",
    "list_objects",
    "local_output_path",
    "make_client",
    "output_uploaded",
    "prepare_data",
    "read_transfer",
    "remote_log_uri",
    "scan_local",
    "scan_names",
    "stage_in",
    "storage_error",
    "sync_logs",
    "transfer_path",
    "upload_dir",
    "upload_output",
    "write_transfer",
]
