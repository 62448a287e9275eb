NAME = "from the CDK layer"
