import { EnvironmentCredential } from "@azure/identity"
import { RestError } from "@azure/storage-blob"
import { describe, expect, it } from "@effect/vitest"
import { azureError, targetOf } from "../src/AzureError.ts"

// The mapping of the errors the Azure SDK throws; the integration tests see the same codes from Azurite.
const target = targetOf("devstoreaccount1", "backups", "a.sql.gz")

describe("azureError", () => {
  it("reads the error code of a HEAD answer from its header (no body): a missing container is BucketNotFound", () => {
    const head = new RestError("", { statusCode: 404 })
    Object.assign(head, { details: { errorCode: "ContainerNotFound" } })
    expect(azureError("stat", target, head)).toMatchObject({
      reason: "BucketNotFound",
      status: 404,
      message: "stat azblob://devstoreaccount1/backups/a.sql.gz failed (HTTP 404): ContainerNotFound"
    })
  })

  it("an authorization code is AccessDenied whatever the status", () => {
    const mismatch = new RestError("This request is not authorized to perform this operation using this permission.", {
      code: "AuthorizationPermissionMismatch",
      statusCode: 403
    })
    expect(azureError("write", target, mismatch).reason).toBe("AccessDenied")
    const disabled = new RestError("Key based authentication is not permitted on this storage account.", {
      code: "KeyBasedAuthenticationNotPermitted",
      statusCode: 400
    })
    expect(azureError("list", target, disabled).reason).toBe("AccessDenied")
  })

  it("no workload identity configured is AccessDenied, with the library's explanation", async () => {
    // Without AZURE_TENANT_ID/AZURE_CLIENT_ID it refuses at once, without any request.
    const saved = { tenant: process.env.AZURE_TENANT_ID, client: process.env.AZURE_CLIENT_ID }
    delete process.env.AZURE_TENANT_ID
    delete process.env.AZURE_CLIENT_ID
    try {
      const error: unknown = await new EnvironmentCredential().getToken("https://storage.azure.com/.default").then(
        () => undefined,
        (e: unknown) => e
      )
      const mapped = azureError("upload", target, error)
      expect(mapped.reason).toBe("AccessDenied")
      expect(mapped.message).toContain("EnvironmentCredential")
    } finally {
      if (saved.tenant !== undefined) process.env.AZURE_TENANT_ID = saved.tenant
      if (saved.client !== undefined) process.env.AZURE_CLIENT_ID = saved.client
    }
  })

  it("a request that got no answer is Unreachable; a SAS token in a URL is not shown", () => {
    const refused = new RestError("connect ECONNREFUSED 127.0.0.1:1", { code: "ECONNREFUSED" })
    expect(azureError("list", target, refused).reason).toBe("Unreachable")
    const sent = new RestError(
      "PUT https://acct.blob.core.windows.net/backups/a.sql.gz?comp=block&blockid=YWJj&sv=2025-01-05&sig=SECRET failed",
      { code: "REQUEST_SEND_ERROR" }
    )
    const mapped = azureError("upload", target, sent)
    expect(mapped.reason).toBe("Unreachable")
    expect(mapped.message).not.toContain("SECRET")
    expect(mapped.message).not.toContain("blockid")
  })

  it("other answers keep their status and no reason", () => {
    const busy = new RestError("The server is busy.", { code: "ServerBusy", statusCode: 503 })
    const mapped = azureError("upload", target, busy)
    expect(mapped.reason).toBeUndefined()
    expect(mapped.status).toBe(503)
  })
})
