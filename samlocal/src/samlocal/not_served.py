"""What a template asks for that is not served locally, and what happens instead: listed at start-up.

Nothing in a template is dropped silently. Each resource type, event source, property or intrinsic function
the emulator does not serve is reported once, with the resources it concerns:

    AWS::IAM::Role (FunctionRole, ApiRole): not applied: functions run with your own AWS credentials
    HelloFunction.Events.Nightly: Type Schedule: not served (no scheduler): invoke the function yourself
"""

from __future__ import annotations

from collections.abc import Mapping

from samlocal.resources import SERVED_TYPES as LOCAL_AWS_TYPES

# Resource types the template reader turns into functions, layers, APIs, routes or nested stacks, and those
# the local AWS endpoint creates (buckets, queues, tables: samlocal.resources).
SERVED_TYPES = frozenset(
    {
        *LOCAL_AWS_TYPES,
        "AWS::Serverless::Function",
        "AWS::Serverless::LayerVersion",
        "AWS::Serverless::Api",
        "AWS::Serverless::HttpApi",
        "AWS::Serverless::Application",
        "AWS::Lambda::Function",
        "AWS::Lambda::LayerVersion",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGateway::Resource",
        "AWS::ApiGateway::Method",
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::Stage",
        "AWS::ApiGatewayV2::Api",
        "AWS::ApiGatewayV2::Route",
        "AWS::ApiGatewayV2::Integration",
        "AWS::ApiGatewayV2::Stage",
        "AWS::CloudFormation::Stack",
        "AWS::Lambda::Url",
    }
)

_CREDENTIALS = "not applied: functions run with your own AWS credentials"
_API_KEYS = "not enforced: any x-api-key value is accepted"
RESOURCE_NOTES: Mapping[str, str] = {
    "AWS::Lambda::Permission": "not needed: the local API may invoke every function",
    "AWS::IAM::Role": _CREDENTIALS,
    "AWS::IAM::Policy": _CREDENTIALS,
    "AWS::IAM::ManagedPolicy": _CREDENTIALS,
    "AWS::Logs::LogGroup": "not created: function output goes to the console",
    "AWS::CDK::Metadata": "ignored (CDK bookkeeping)",
    "AWS::Lambda::Version": "not created: the function's current code is served",
    "AWS::Lambda::Alias": "not created: the function's current code is served",
    "AWS::Lambda::EventSourceMapping": "not served (no event source polling)",
    "AWS::ApiGateway::Account": "ignored (account-wide API Gateway settings)",
    "AWS::ApiGateway::ApiKey": _API_KEYS,
    "AWS::ApiGateway::UsagePlan": "not enforced: no throttling or quota locally",
    "AWS::ApiGateway::UsagePlanKey": _API_KEYS,
    "AWS::ApiGateway::Model": "not applied: request bodies are not validated by the local API",
    "AWS::ApiGateway::RequestValidator": "not applied: request bodies are not validated by the local API",
    "AWS::ApiGateway::DomainName": "ignored: the API is served on the local address",
    "AWS::ApiGateway::BasePathMapping": "ignored: the API is served on the local address",
    "AWS::ApiGatewayV2::DomainName": "ignored: the API is served on the local address",
    "AWS::ApiGatewayV2::ApiMapping": "ignored: the API is served on the local address",
    "AWS::ApiGatewayV2::Deployment": "not needed: routes are served as the template declares them",
    "AWS::Serverless::StateMachine": "not served (no Step Functions locally)",
    "AWS::StepFunctions::StateMachine": "not served (no Step Functions locally)",
}
DEFAULT_RESOURCE_NOTE = "not served"

EVENT_NOTES: Mapping[str, str] = {
    "Schedule": "not served (no scheduler): invoke the function yourself",
    "ScheduleV2": "not served (no scheduler): invoke the function yourself",
    "CloudWatchEvent": "not served (no EventBridge locally)",
    "EventBridgeRule": "not served (no EventBridge locally)",
    "SNS": "not served (no SNS delivery locally)",
    "Kinesis": "not served (no stream polling locally)",
    "DynamoDB": "not served (no stream polling locally)",
}
DEFAULT_EVENT_NOTE = "not served"
# Event sources the local AWS endpoint drives (samlocal.event_sources).
SERVED_EVENT_TYPES = frozenset({"Api", "HttpApi", "SQS", "S3"})

_NO_XRAY = "ignored: no X-Ray tracing locally"
_LOCAL_ADDRESS = "ignored: the API is served on the local address"
FUNCTION_PROPERTY_NOTES: Mapping[str, str] = {
    "ProvisionedConcurrencyConfig": "ignored: environments start on demand",
    "AutoPublishAlias": "ignored: the current code is served",
    "AutoPublishAliasAllProperties": "ignored: the current code is served",
    "AutoPublishCodeSha256": "ignored: the current code is served",
    "DeploymentPreference": "ignored: no gradual deployments locally",
    "VersionDescription": "ignored: the current code is served",
    "SnapStart": "ignored: environments start from scratch",
    "Tracing": _NO_XRAY,
    "VpcConfig": "ignored: functions use this machine's network",
    "FileSystemConfigs": "not mounted (no EFS locally)",
    "DeadLetterQueue": "ignored: no asynchronous invocations locally",
    "EventInvokeConfig": "ignored: no asynchronous invocations locally",
    "Role": _CREDENTIALS,
    "Policies": _CREDENTIALS,
    "PermissionsBoundary": _CREDENTIALS,
    "RolePath": _CREDENTIALS,
    "KmsKeyArn": "ignored: environment variables are not encrypted locally",
    "CodeSigningConfigArn": "ignored: code is not signature-checked locally",
    "EphemeralStorage": "ignored: /tmp is this machine's",
    "LoggingConfig": "ignored: function output goes to the console",
    "RuntimeManagementConfig": "ignored: the local Python runs the function",
    "RecursiveLoop": "ignored",
    "ImageConfig": "ignored: image functions are not served",
}
# Properties of a function that change nothing locally and need no word.
FUNCTION_PROPERTIES_SERVED = frozenset(
    {
        "Handler",
        "Runtime",
        "CodeUri",
        "InlineCode",
        "Code",
        "Layers",
        "Environment",
        "Timeout",
        "MemorySize",
        "Architectures",
        "FunctionName",
        "Events",
        "PackageType",
        "Description",
        "Tags",
        "PropagateTags",
        "ReservedConcurrentExecutions",
        "FunctionUrlConfig",
    }
)

API_PROPERTY_NOTES: Mapping[str, str] = {
    "EndpointConfiguration": _LOCAL_ADDRESS,
    "Domain": _LOCAL_ADDRESS,
    "DisableExecuteApiEndpoint": _LOCAL_ADDRESS,
    "AccessLogSetting": "ignored: the access log is the console",
    "AccessLogSettings": "ignored: the access log is the console",
    "MethodSettings": "ignored: no throttling, caching or metrics locally",
    "DefaultRouteSettings": "ignored: no throttling locally",
    "RouteSettings": "ignored: no throttling locally",
    "TracingEnabled": _NO_XRAY,
    "CacheClusterEnabled": "ignored: no response cache locally",
    "CacheClusterSize": "ignored: no response cache locally",
    "CanarySetting": "ignored: one deployment is served",
    "MinimumCompressionSize": "ignored: responses are not compressed",
    "Models": "not applied: request bodies are not validated by the local API",
    "Policy": "not applied: no resource policy locally",
}
API_PROPERTIES_SERVED = frozenset(
    {
        "StageName",
        "DefinitionBody",
        "DefinitionUri",
        "BinaryMediaTypes",
        "Variables",
        "StageVariables",
        "Auth",
        "Cors",
        "CorsConfiguration",
        "GatewayResponses",
        "Name",
        "Description",
        "OpenApiVersion",
        "Tags",
        "PropagateTags",
        "FailOnWarnings",
        "AlwaysDeploy",
        "Mode",
        "ApiKeySourceType",
        "MergeDefinitions",
        "Body",
        "BodyS3Location",
        "ProtocolType",
        "Target",
        "RouteKey",
    }
)


class NotServed:
    """Collects what is not served; `lines()` groups the resources a note concerns."""

    def __init__(self) -> None:
        self._where: dict[tuple[str, str], list[str]] = {}

    def add(self, subject: str, note: str, where: str | None = None) -> None:
        places = self._where.setdefault((subject, note), [])
        if where is not None and where not in places:
            places.append(where)

    def extend(self, lines: list[str]) -> None:
        for line in lines:
            self.add(line, "", None)

    def resource(self, logical_id: str, resource_type: str) -> None:
        self.add(resource_type, RESOURCE_NOTES.get(resource_type, DEFAULT_RESOURCE_NOTE), logical_id)

    def event(self, where: str, event_type: str) -> None:
        if event_type in SERVED_EVENT_TYPES:
            return
        self.add(f"{where}: Type {event_type}", EVENT_NOTES.get(event_type, DEFAULT_EVENT_NOTE))

    def function_properties(self, logical_id: str, properties: Mapping[str, object]) -> None:
        for name in properties:
            if name not in FUNCTION_PROPERTIES_SERVED:
                self.add(name, FUNCTION_PROPERTY_NOTES.get(name, "ignored"), logical_id)

    def api_properties(self, logical_id: str, properties: Mapping[str, object]) -> None:
        for name in properties:
            if name not in API_PROPERTIES_SERVED:
                self.add(name, API_PROPERTY_NOTES.get(name, "ignored"), logical_id)

    def lines(self) -> list[str]:
        lines = []
        for (subject, note), places in self._where.items():
            named = f"{subject} ({', '.join(places)})" if places else subject
            lines.append(f"{named}: {note}" if note else named)
        return lines
