export {
  type Address,
  HttpEndpoints,
  type HttpEndpointsOptions,
  type HttpEndpointsShape,
  type Readiness,
  readyzResponse,
  ServeError
} from "./HttpEndpoints.ts"
