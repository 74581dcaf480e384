"""Local stand-ins for what moto does not emulate. Test and rehearsal support: never imported by the
production path (``scl_delay.aws``), and named for what they replace.

- ``moto_server``          launches moto's server in its own process with the two patches below applied
- ``moto_update_endpoint`` adds ``UpdateEndpoint`` to moto's SageMaker backend (moto 5.2 answers 500)
- ``training_backend``     runs CreateTrainingJob for real: /opt/ml tree, `train`, tarballs into moto's S3,
                           metric scraping with the job's own MetricDefinitions, CloudWatch log lines
- ``runtime_standin``      the SageMaker runtime (``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``): forwards
                           InvokeEndpoint to a local ``serve`` and answers a container 4xx/5xx as
                           ModelError 424
- ``rehearsal``, ``process`` data into moto's S3, a real ``serve`` on a job's model.tar.gz;
                           process-group handles
- ``real_dataset``         where the real SCL dataset is, for the tests, the benchmarks and the demos
- ``machine``              the machine line every benchmark figure carries (cores, CPU, load average)
"""
