"""Batch jobs over S3: a prefix or a list of images in, JSON Lines out, job state in DynamoDB, signed webhooks.

The API creates a job (`service`), the planner lists its input page by page (`planner`), workers run the
images of each work message through the same pipeline as the API (`worker`), and whoever sees the last
image counted finishes the job once (`store`) and sends its webhook once (`webhooks`).
"""
