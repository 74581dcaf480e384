"""Small gaps in moto 5.2's SageMaker that change what a caller sees, fixed inside the moto server process.

- ``ListModels`` ignores ``NameContains`` and returns every model in the account. On AWS the filter is
  applied by the service, so a caller scoped by IAM to its own names (``model/<endpoint>*``) never gets
  other endpoints' models to look at; under enforced IAM, moto's unfiltered answer made deploy.py ask
  ``ListTags`` on models it may not read.
"""

from __future__ import annotations


def install() -> None:
    from moto.core.responses import ActionResult
    from moto.sagemaker.responses import SageMakerResponse

    if getattr(SageMakerResponse, "_scl_list_models", False):
        return

    def list_models(self) -> ActionResult:
        contains = (self._get_param("NameContains") or "").lower()
        models = [m for m in self.sagemaker_backend.list_models() if contains in m.model_name.lower()]
        return ActionResult({"Models": [model.response_object for model in models]})

    SageMakerResponse.list_models = list_models  # type: ignore[method-assign]
    SageMakerResponse._scl_list_models = True  # type: ignore[attr-defined]
