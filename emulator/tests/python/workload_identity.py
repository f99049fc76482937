"""Python azure-identity's WorkloadIdentityCredential against the emulator.

Reads AZURE_AUTHORITY_HOST, AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE and
REQUESTS_CA_BUNDLE from the environment; prints the access token's claims as JSON.
"""
import base64
import json
import sys

from azure.identity import WorkloadIdentityCredential

scope = sys.argv[1] if len(sys.argv) > 1 else "https://storage.azure.com/.default"
token = WorkloadIdentityCredential().get_token(scope)
payload = token.token.split(".")[1]
payload += "=" * (-len(payload) % 4)
print(json.dumps(json.loads(base64.urlsafe_b64decode(payload))))
