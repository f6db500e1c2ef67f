import { describe, expect, it } from "@effect/vitest"
import { storageError, withoutSecrets } from "../src/StorageError.ts"

describe("storage errors carry no credentials", () => {
  const session =
    "https://storage.googleapis.com/upload/storage/v1/b/backups/o?uploadType=resumable&name=x.sql.gz&upload_id=ADPycdtW9fGh-SECRET"

  it.each([
    [
      `Retry limit exceeded for ${session}`,
      "Retry limit exceeded for https://storage.googleapis.com/upload/storage/v1/b/backups/o?<redacted>"
    ],
    ["upload_id=ADPycdtW9fGh-SECRET expired", "upload_id=<redacted> expired"],
    ["uploadId: abc-SECRET, retry", "uploadId: <redacted>, retry"],
    [
      "GET https://storage.googleapis.com/b/o?X-Goog-Signature=SECRET&X-Goog-Credential=sa (HTTP 403)",
      "GET https://storage.googleapis.com/b/o?<redacted> (HTTP 403)"
    ],
    ["connect ECONNREFUSED 127.0.0.1:4443", "connect ECONNREFUSED 127.0.0.1:4443"]
  ])("%s", (text, expected) => {
    expect(withoutSecrets(text)).toBe(expected)
  })

  it("a failed upload's message names the object and the cause, not the session", () => {
    const error = Object.assign(new Error(`Upload failed: ${session}\nstack...`), { code: 503 })
    const wrapped = storageError(
      "upload",
      { bucket: "backups", object: "x.sql.gz", url: "gs://backups/x.sql.gz" },
      error
    )
    expect(wrapped.message).toBe(
      "upload gs://backups/x.sql.gz failed (HTTP 503): Upload failed: https://storage.googleapis.com/upload/storage/v1/b/backups/o?<redacted>"
    )
    expect(wrapped.message).not.toContain("SECRET")
  })
})
