"""The batch resources of template.yaml as CloudFormation deploys them (after the SAM transform, parameters and
conditions applied): the event source mappings, the dead-letter queue, the bucket notification, and
least-privilege roles per function."""

from __future__ import annotations

from typing import Any

import pytest

from deploy.test_stack_settings import TEMPLATE, deployed

pytestmark = pytest.mark.slow


def statements(resources: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    """The inline policy statements of a role, by Sid (SAM policy templates under their actions)."""
    found: dict[str, dict[str, Any]] = {}
    for policy in resources[role]["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            found[statement.get("Sid") or ",".join(actions if isinstance(actions, list) else [actions])] = statement
    return found


def mapping_of(resources: dict[str, Any], function: str) -> dict[str, Any]:
    mapping: dict[str, Any]
    (mapping,) = [
        resource["Properties"]
        for resource in resources.values()
        if resource["Type"] == "AWS::Lambda::EventSourceMapping"
        and resource["Properties"]["FunctionName"] == {"Ref": function}
    ]
    return mapping


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    stack: dict[str, Any] = deployed(InputBucket="photos-in", OutputBucket="photos-out").resources()
    return stack


def test_work_and_plan_queues_redrive_to_the_dead_letter_queue(resources: dict[str, Any]) -> None:
    for queue in ("WorkQueue", "PlanQueue"):
        redrive = resources[queue]["Properties"]["RedrivePolicy"]
        assert redrive == {"deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}, "maxReceiveCount": "3"}
    redriven = deployed(MaxReceiveCount="5").resources()["WorkQueue"]["Properties"]["RedrivePolicy"]
    assert redriven["maxReceiveCount"] == "5"


def test_the_worker_reads_the_work_queue_with_partial_batch_responses_and_bounded_concurrency(
    resources: dict[str, Any],
) -> None:
    mapping = mapping_of(resources, "WorkerFunction")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    assert mapping["BatchSize"] == str(TEMPLATE["Parameters"]["WorkerBatchSize"]["Default"])
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": "10"}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    planner = mapping_of(resources, "PlannerFunction")
    assert (planner["EventSourceArn"], planner["BatchSize"]) == ({"Fn::GetAtt": ["PlanQueue", "Arn"]}, 1)
    dead_letters = mapping_of(resources, "DeadLetterFunction")
    assert dead_letters["EventSourceArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    scaled = mapping_of(deployed(WorkerMaxConcurrency="200", WorkerBatchSize="10").resources(), "WorkerFunction")
    assert (scaled["ScalingConfig"], scaled["BatchSize"]) == ({"MaximumConcurrency": "200"}, "10")


def test_the_jobs_bucket_notifies_the_work_queue_of_incoming_images(resources: dict[str, Any]) -> None:
    bucket = resources["JobsBucket"]
    (notification,) = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Queue"] == {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "incoming/"}]
    assert bucket["DependsOn"] == "WorkQueuePolicy"
    assert bucket["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    (statement,) = resources["WorkQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}


def test_the_worker_reads_inputs_and_writes_only_results(resources: dict[str, Any]) -> None:
    granted = statements(resources, "WorkerRole")
    assert granted["ReadImages"]["Action"] == "s3:GetObject"
    assert granted["ReadImages"]["Resource"] == [{"Fn::Sub": "${JobsBucket.Arn}/*"}, "arn:aws:s3:::photos-in/*"]
    assert granted["WriteResults"]["Action"] == "s3:PutObject"
    assert granted["WriteResults"]["Resource"] == [
        {"Fn::Sub": "${JobsBucket.Arn}/results/*"},
        "arn:aws:s3:::photos-out/*",
    ]
    assert granted["JobRecords"]["Resource"] == {"Fn::GetAtt": ["JobsTable", "Arn"]}
    assert "dynamodb:DeleteItem" not in granted["JobRecords"]["Action"]
    assert not any("sqs:SendMessage" in str(statement["Action"]) for statement in granted.values())
    assert granted["WriteOwnLogs"]["Resource"] == {"Fn::GetAtt": ["WorkerLogGroup", "Arn"]}
    assert granted["ConsumeWorkQueue"]["Resource"] == {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    assert "ManagedPolicyArns" not in resources["WorkerRole"]["Properties"]
    without = statements(deployed().resources(), "WorkerRole")
    assert without["ReadImages"]["Resource"] == [{"Fn::Sub": "${JobsBucket.Arn}/*"}]


def test_the_planner_lists_and_sends_but_reads_no_image(resources: dict[str, Any]) -> None:
    granted = statements(resources, "PlannerRole")
    actions = {str(statement["Action"]) for statement in granted.values()}
    assert "s3:ListBucket" in actions
    assert not any("GetObject" in action or "PutObject" in action for action in actions)
    assert any("sqs:SendMessage" in action for action in actions)


def test_the_api_records_and_queues_jobs_but_reads_no_image(resources: dict[str, Any]) -> None:
    granted = statements(resources, "FunctionRole")
    assert granted["QueueJobs"]["Action"] == ["sqs:SendMessage"]
    assert granted["CheckJobLocations"]["Action"] == "s3:ListBucket"
    assert not any("PutObject" in str(statement["Action"]) for statement in granted.values())


def test_the_dead_letter_consumer_counts_and_writes_error_lines_only(resources: dict[str, Any]) -> None:
    granted = statements(resources, "DeadLetterRole")
    assert granted["ConsumeDeadLetters"]["Resource"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert granted["WriteResults"]["Action"] == "s3:PutObject"
    assert not any("GetObject" in str(statement["Action"]) for statement in granted.values())


def test_the_table_is_on_demand_with_expiring_records(resources: dict[str, Any]) -> None:
    table = resources["JobsTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_functions_see_the_batch_resources() -> None:
    resources = TEMPLATE["Resources"]
    worker = resources["WorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert worker["JOBS_TABLE"] == {"Ref": "JobsTable"}
    assert worker["JOBS_BUCKET"] == {"Ref": "JobsBucket"}
    planner = resources["PlannerFunction"]["Properties"]["Environment"]["Variables"]
    assert planner["WORK_QUEUE_URL"] == {"Ref": "WorkQueue"}
    assert planner["PLAN_QUEUE_URL"] == {"Ref": "PlanQueue"}
    assert resources["DeadLetterFunction"]["Properties"]["Handler"] == "worker.dead_letter_handler"
    assert TEMPLATE["Parameters"]["WebhookSecret"]["NoEcho"] is True
