"""``DeleteModelPackage`` and ``DeleteModelPackageGroup`` for moto's SageMaker backend (5.2.x answers both
with 500 NotImplemented). Applied inside the moto server process with the UpdateEndpoint patch.

As on AWS: a missing package or group is a ValidationException; a group that still holds versions cannot
be deleted ("delete the model packages first").
"""

from __future__ import annotations


def install() -> None:
    from moto.core.responses import EmptyResult
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    if getattr(SageMakerModelBackend, "_scl_registry_deletes", False):
        return

    def delete_model_package(self, name: str) -> None:
        arn = self.model_package_name_mapping.get(name, name)
        package = self.model_packages.pop(arn, None)
        if package is None:
            raise ValidationError(message=f"Model package {name} does not exist.")
        for key in [k for k, v in self.model_package_name_mapping.items() if v == arn]:
            del self.model_package_name_mapping[key]

    def delete_model_package_group(self, name: str) -> None:
        if name not in self.model_package_groups:
            raise ValidationError(message=f"Model package group {name} does not exist.")
        if any(p.model_package_group_name == name for p in self.model_packages.values()):
            raise ValidationError(
                message=f"Model package group {name} still has model packages: delete them first."
            )
        del self.model_package_groups[name]

    def delete_model_package_response(self):
        self.sagemaker_backend.delete_model_package(self._get_param("ModelPackageName"))
        return EmptyResult()

    def delete_model_package_group_response(self):
        self.sagemaker_backend.delete_model_package_group(self._get_param("ModelPackageGroupName"))
        return EmptyResult()

    # moto's classes lack these calls: added at run time, which a type checker cannot follow
    for cls, name, value in (
        (SageMakerModelBackend, "delete_model_package", delete_model_package),
        (SageMakerModelBackend, "delete_model_package_group", delete_model_package_group),
        (SageMakerResponse, "delete_model_package", delete_model_package_response),
        (SageMakerResponse, "delete_model_package_group", delete_model_package_group_response),
        (SageMakerModelBackend, "_scl_registry_deletes", True),
    ):
        setattr(cls, name, value)
