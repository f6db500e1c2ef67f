import { NoSuchBucket, NoSuchKey, NotFound, S3ServiceException } from "@aws-sdk/client-s3"
import { describe, expect, it } from "@effect/vitest"
import { isNotFound, s3Error } from "../src/S3Error.ts"

// The answers of real S3 that versitygw does not give (it is tested against in the
// integration tests): the SDK's own exception classes, as the client throws them.
const answer = (name: string, status: number, message = `${name} message`) =>
  new S3ServiceException({ name, $fault: "client", $metadata: { httpStatusCode: status }, message })

describe("S3 errors", () => {
  it.each([
    ["InvalidAccessKeyId", 403],
    ["SignatureDoesNotMatch", 403],
    ["ExpiredToken", 400],
    ["InvalidToken", 400],
    ["AccessDenied", 403],
    ["AllAccessDisabled", 403]
  ])("%s is AccessDenied", (code, status) => {
    expect(s3Error("write", "b", "a.json", answer(code, status)).reason).toBe("AccessDenied")
  })

  it("NoSuchBucket is BucketNotFound whatever the operation, and never a missing object", () => {
    const error = new NoSuchBucket({
      $metadata: { httpStatusCode: 404 },
      message: "The specified bucket does not exist"
    })
    for (const operation of ["read", "list", "write", "delete"] as const) {
      expect(s3Error(operation, "b", "a.json", error).reason).toBe("BucketNotFound")
    }
    expect(isNotFound(error)).toBe(false)
  })

  it("NoSuchKey and a bare 404 on HEAD are a missing object", () => {
    expect(isNotFound(new NoSuchKey({ $metadata: { httpStatusCode: 404 }, message: "no key" }))).toBe(true)
    expect(isNotFound(new NotFound({ $metadata: { httpStatusCode: 404 }, message: "UnknownError" }))).toBe(true)
    expect(isNotFound(answer("XAdminUserNotFound", 404))).toBe(false)
  })

  it("a HEAD answer without a body is described by its status, not as UnknownError", () => {
    const error = s3Error("stat", "b", "a.json", answer("Unknown", 403, "UnknownError"))
    expect(error.message).toBe("stat s3://b/a.json failed (HTTP 403): Forbidden")
    expect(error.reason).toBe("AccessDenied")
  })

  it("a connection that never got an answer is Unreachable, a server error is not", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" })
    expect(s3Error("list", "b", "", refused).reason).toBe("Unreachable")
    const timedOut = Object.assign(new Error("the request socket did not establish a connection"), {
      name: "TimeoutError"
    })
    expect(s3Error("list", "b", "", timedOut).reason).toBe("Unreachable")
    expect(s3Error("list", "b", "", answer("InternalError", 500)).reason).toBeUndefined()
  })

  it("a 404 on a write is the bucket only when S3 names nothing else", () => {
    expect(s3Error("write", "b", "a.json", answer("NotFound", 404)).reason).toBe("BucketNotFound")
    expect(s3Error("upload", "b", "a.json", answer("NoSuchUpload", 404)).reason).toBeUndefined()
  })

  it("names the object as an s3:// URL and keeps upload ids out of the message", () => {
    const error = s3Error(
      "upload",
      "backups",
      "ns/x.sql.gz",
      answer("NoSuchUpload", 404, "The upload does not exist: UploadId=2~SECRET")
    )
    expect(error.message).toBe(
      "upload s3://backups/ns/x.sql.gz failed (HTTP 404): The upload does not exist: UploadId=<redacted>"
    )
  })
})
