"""Links in a task's page to where the started work shows up: saved (XCom) before the task defers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey


class SavedLink(BaseOperatorLink):
    """A link whose URL the operator saved as an XCom under :attr:`xcom_key`; empty until then."""

    name: ClassVar[str]
    xcom_key: ClassVar[str]

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        url = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return url if isinstance(url, str) else ""


class CozeWorkspaceLink(SavedLink):
    """The Coze workspace the copy goes to."""

    name = "Coze workspace"
    xcom_key = "coze_workspace_url"


class TrueWatchConsoleLink(SavedLink):
    """The console of the workspace the API key belongs to."""

    name = "TrueWatch console"
    xcom_key = "truewatch_console_url"
