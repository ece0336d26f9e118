/**
 * The protobuf classes and the gRPC service definition that rocketmq-client-nodejs generated and ships.
 * The service's serializers check `instanceof` against these very classes, so the broker builds its
 * answers with them rather than its own. They are CommonJS modules whose exports Node cannot list for
 * ESM: import them whole, then pick.
 */
import definition from 'rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb.js';
import service from 'rocketmq-client-nodejs/proto/apache/rocketmq/v2/service_pb.js';

export { MessagingServiceService } from 'rocketmq-client-nodejs/proto/apache/rocketmq/v2/service_grpc_pb.js';
export { definition as pbDefinition, service as pbService };
