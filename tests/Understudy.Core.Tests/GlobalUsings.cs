// What nearly every test here reads: the messages and addresses, the three parts of the core under test, the fakes
// and the fixed three-server cluster (P, B1, B2, Config, Entry...). Global, so that each test file, and each part of
// a partial test class, starts with what is particular to it.
global using Understudy.Core.Monitor;
global using Understudy.Core.Replication;
global using Understudy.Core.StateMachines;
global using Understudy.Core.Tests.Fakes;
global using Understudy.Protocol;
global using static Understudy.Core.Tests.Fakes.Cluster;
