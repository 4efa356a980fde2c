// client.close() closes the channel it was given: the balancer, its discovery and every connection
client.close();
