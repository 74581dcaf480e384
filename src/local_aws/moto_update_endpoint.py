"""``UpdateEndpoint`` for moto's SageMaker backend, which answers it with 500 NotImplemented (5.2.x).

Applied inside the moto server process (see ``moto_server``). Semantics kept from AWS: the endpoint and the
new config must exist; the endpoint switches to the new config's variants and stays InService (moto has no
fleet, so the blue/green shift is instant). With ``RetainAllVariantProperties`` the variant keeps its current
instance count (what auto scaling reached), as AWS documents; without it the new config's initial count
wins. The DeploymentConfig sent is kept and returned by DescribeEndpoint as ``LastDeploymentConfig``, as AWS
does, so tests can check what was asked for.
"""

from __future__ import annotations

from typing import Any


def install() -> None:
    from moto.core.utils import utcnow
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import FakeEndpoint, FakeEndpointConfig, SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    if getattr(SageMakerModelBackend, "_scl_update_endpoint", False):
        return
    from . import moto_model_registry

    moto_model_registry.install()  # the registry deletes moto also lacks (teardown --purge-registry)

    def update_endpoint(
        self,
        endpoint_name: str,
        endpoint_config_name: str,
        deployment_config: dict[str, Any] | None = None,
        retain_all_variant_properties: bool = False,
    ) -> FakeEndpoint:
        if endpoint_name not in self.endpoints:
            arn = FakeEndpoint.arn_formatter(endpoint_name, self.account_id, self.region_name)
            raise ValidationError(message=f"Could not find endpoint '{arn}'.")
        if endpoint_config_name not in self.endpoint_configs:
            arn = FakeEndpointConfig.arn_formatter(endpoint_config_name, self.account_id, self.region_name)
            raise ValidationError(message=f"Could not find endpoint configuration '{arn}'.")
        endpoint = self.endpoints[endpoint_name]
        config = self.endpoint_configs[endpoint_config_name].response_object
        endpoint.endpoint_config_name = endpoint_config_name
        before = {v["VariantName"]: v for v in endpoint.production_variants}
        endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
        if retain_all_variant_properties:
            for variant in endpoint.production_variants:
                old = before.get(variant["VariantName"])
                if old:
                    for key in ("CurrentInstanceCount", "DesiredInstanceCount"):
                        if key in old:
                            variant[key] = old[key]
        endpoint.last_retain_all_variant_properties = retain_all_variant_properties
        endpoint.last_deployment_config = deployment_config
        endpoint.endpoint_status = "InService"
        endpoint.last_modified_time = utcnow()
        return endpoint

    def update_endpoint_response(self):
        from moto.core.responses import ActionResult

        endpoint = self.sagemaker_backend.update_endpoint(
            endpoint_name=self._get_param("EndpointName"),
            endpoint_config_name=self._get_param("EndpointConfigName"),
            deployment_config=self._get_param("DeploymentConfig"),
            retain_all_variant_properties=bool(self._get_param("RetainAllVariantProperties", False)),
        )
        return ActionResult({"EndpointArn": endpoint.arn})

    SageMakerModelBackend.update_endpoint = update_endpoint  # type: ignore[attr-defined]
    SageMakerResponse.update_endpoint = update_endpoint_response  # type: ignore[attr-defined]
    SageMakerModelBackend._scl_update_endpoint = True  # type: ignore[attr-defined]
