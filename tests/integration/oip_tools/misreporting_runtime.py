"""Run in .venv-oip, inside MLServer: the scikit-learn runtime, answering under another version.

MLServer finds the model under the version it was registered with (``parameters.version``), and
this runtime then reports ``parameters.extra.reported_version`` in every inference response (and
lists it in the model's metadata, through ``versions`` in its settings): a model server whose
model was swapped behind the version it is asked for, or that ignores the requested version.
"""

from __future__ import annotations

from mlserver.types import InferenceRequest, InferenceResponse
from mlserver_sklearn import SKLearnModel


class MisreportingSKLearnModel(SKLearnModel):  # type: ignore[misc]
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        response: InferenceResponse = await super().predict(payload)
        extra = self.settings.parameters.extra if self.settings.parameters else None
        response.model_version = (extra or {})["reported_version"]
        return response
